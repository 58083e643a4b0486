import sys

from keras_trpo.quiet import quiet_tensorflow_import

quiet_tensorflow_import(0)  # before export.cli imports TensorFlow: keep its C++ start-up lines off stderr

from keras_trpo.export.cli import main  # noqa: E402

sys.exit(main())
