"""The policy: ``policy`` (acting, the critic's pass over a rollout, the training batch's layout, for
feed-forward and recurrent policies alike) around the Keras models that ``networks`` builds
(``dict_networks`` for Dict observations)."""
