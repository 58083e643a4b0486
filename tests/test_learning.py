"""A real learning run: default CartPole settings reach the maximum return."""
import keras_trpo


def test_cartpole_learns_to_balance():
    agent = keras_trpo.TRPO("CartPole-v1", seed=0)
    history = agent.fit(100_000, verbose=0)
    mean, _ = agent.evaluate(episodes=10)
    assert mean >= 475, f"eval mean {mean}; training curve tail {history.history['mean_return'][-5:]}"
    assert history.history["mean_return"][-1] > 5 * history.history["mean_return"][0]
    assert sum(history.history["step_accepted"]) >= 0.9 * len(history.history["step_accepted"])
