import sys, time, json
import keras_trpo
arm = sys.argv[1]; steps = int(float(sys.argv[2])); seed = int(sys.argv[3])
kw = dict(recurrent="lstm") if arm == "lstm" else {}
agent = keras_trpo.TRPO("JointLimitsMemory-v0", seed=seed, env_kwargs={"shaping": True}, action_masks="on",
                        normalize_obs=True, max_kl=0.05, n_envs=8, n_steps=64, value_batch_size=256, **kw)
t = time.time(); agent.fit(steps, verbose=0)
mean, std, inv = agent.evaluate(episodes=20, seed=10_000, return_invalid_actions=True)
print(json.dumps(dict(arm=arm, seed=seed, steps=steps, eval_mean=mean, eval_std=std, invalid=inv, wall_s=time.time() - t)))
