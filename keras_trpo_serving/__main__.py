import sys

from keras_trpo_serving.cli import main

sys.exit(main())
