"""``python -m keras_trpo ...``: the same command line as ``keras-trpo``."""
import sys

from keras_trpo.cli import main

sys.exit(main())
