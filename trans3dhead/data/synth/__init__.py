"""SynthHeads: the embedded benchmark (procedural heads rendered into the official file formats)."""
