import sys

from trans3dhead.data.synth.generate import main

sys.exit(main())
