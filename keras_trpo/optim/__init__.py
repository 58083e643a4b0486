"""The update: ``train_step`` (one iteration's learning from its rollout) drives ``learner.Learner``:
the TRPO policy step (conjugate gradient ``cg``, Fisher-vector products ``fisher``, ``line_search``)
and the critic's regression."""
