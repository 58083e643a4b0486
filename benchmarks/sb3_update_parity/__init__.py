"""Does keras_trpo's learner take sb3-contrib's step from sb3-contrib's own data? (issue 28, Swimmer gap)

Two halves, two Pythons (sb3-contrib's venv has no TensorFlow, keras_trpo's has no torch):

  SB3_PYTHON -m benchmarks.sb3_update_parity dump ENV SEED --at 1 30 100 [--out DIR]
  python     -m benchmarks.sb3_update_parity check DIR/ENV_seedN_iterK.npz [...]
  python     -m benchmarks.sb3_update_parity cgstart DIR/ENV_seedN_iterK.npz [...]
  python     -m benchmarks.sb3_update_parity hybrid ENV STEPS SEED [...] [--out DIR]   # torch + sb3-contrib importable

``dump`` trains sb3-contrib's TRPO with the zoo's settings (``sb3_runner.make_model``) and, at each training
iteration named by ``--at``, stores what its ``train()`` saw and did, one ``.npz`` per iteration (NumPy arrays
only, no pickle): the rollout as GAE read it ([n_steps, n_envs] rewards with SB3's truncation bootstraps, values,
episode starts, the last values) and the advantages it computed, the rollout buffer as ``train()`` reads it
(VecNormalize's observations, actions, GAE advantages before normalisation, returns, the acting log-probabilities),
every policy parameter before and after ``train()``, the critic's Adam state before it, the permutations its buffer
drew (the first orders the policy's full batch, then one per critic epoch, cut into minibatches), the gradient and
direction its conjugate-gradient solver returned, and what it logged.

``check`` builds keras_trpo's agent for the same env with the same settings (the zoo's, observations and rewards
already normalised by VecNormalize, so no normaliser of its own; SB3's Adam epsilon for the critic), copies
sb3-contrib's weights and Adam state into it, and runs keras_trpo's ``Learner`` on the same batch: the policy step
on the same normalised advantages, the critic's 20 epochs on the same minibatches. It prints, per file, how far the
two agree: the forward pass, GAE (keras_trpo's ``compute_gae`` on sb3-contrib's rollout), the surrogate's gradient,
the step (cosine and length ratio of theta_new - theta_old), the KL reached, and the critic's parameters after its
fit. Box actions (diagonal Gaussian, state-independent log std) and Discrete ones (categorical), sb3-contrib's
default MlpPolicy. Equal steps mean the Swimmer gap is not in the update; a different step says where to look.

``cgstart`` asks of the same batch whether sb3-contrib's random CG start (``1e-4 * randn``; keras_trpo starts from 0)
is what separates the two directions late in a run, and how far the ``cg_iters`` solve is from converged."""

