import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the CLI

from keras_trpo.cli import main  # noqa: E402

sys.exit(main())
