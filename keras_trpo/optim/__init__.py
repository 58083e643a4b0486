"""The update: the TRPO policy step (conjugate gradient ``cg``, Fisher-vector products ``fisher``,
``line_search``) and the critic's regression, driven by ``learner.Learner``."""
