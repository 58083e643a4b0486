import sys

from keras_trpo.export.cli import main  # TensorFlow-free until main has checked the arguments and the agent file

sys.exit(main())
