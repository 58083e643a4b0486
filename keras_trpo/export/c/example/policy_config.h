// The templates' conditions for this policy, then its public data.
#define KT_DICT_OBS 1
#define KT_RECURRENT 1
#define KT_LSTM 1
#define KT_GRU 0
#define KT_CATEGORICAL 1
#define KT_MULTI_CATEGORICAL 1
#define KT_BERNOULLI 0
#define KT_GAUSSIAN 0
#define KT_MASKED 0
#define KT_USES_TANH 0
#define KT_USES_RELU 1
#define KT_USES_SIGMOID 0
#define KT_USES_ELU 0
#define KT_USES_SELU 0
#define KT_USES_SOFTPLUS 0
#define KT_USES_SOFTSIGN 0
#define KT_USES_SILU 0
#define KT_USES_SWISH 0
#define KT_USES_GELU 0
#define KT_USES_LEAKY_RELU 0
#define KT_USES_RELU6 0
#define KT_USES_HARD_SIGMOID 0
#define KT_USES_EXPONENTIAL 0

// Sizes
#define POLICY_OBS_SIZE 6
#define POLICY_OBS_GOAL_SIZE 1  // a Discrete(3) index
#define POLICY_OBS_GOAL_N 3
#define POLICY_OBS_POS_SIZE 3
#define POLICY_OBS_RAW_SIZE 2
#define POLICY_STATE_SIZE 8  // the LSTM's state [h, c]: h then c, 4 floats each
#define POLICY_ACTION_SIZE 2
#define POLICY_PARAMS_SIZE 5
#define POLICY_NOISE_SIZE 5
#define POLICY_STACK_FLOATS 56
#define POLICY_ACTION_CATEGORICALS 2

// Metadata: the ONNX export's metadata_props (policy_metadata() returns them as JSON)
#define POLICY_KERAS_TRPO_VERSION "0.1.0"
#define POLICY_ENV_ID "Example-v0"
#define POLICY_OBSERVATION_SPACE "{}"
#define POLICY_ACTION_SPACE "{}"
#define POLICY_DISTRIBUTION ""
#define POLICY_OBS_NORMALIZATION 1
#define POLICY_TRAINED_TIMESTEPS 0
#define POLICY_EXPORTED_AT ""
#define POLICY_RECURRENT ""
#define POLICY_STATE_RESET "zeros at an episode start"

// One field per Dict key, in sorted-key order (a Discrete key: its index as a float).
typedef struct {
    float goal;  // Discrete(3) index
    float pos[POLICY_OBS_POS_SIZE];
    float raw[POLICY_OBS_RAW_SIZE];
} policy_obs_t;

typedef int32_t policy_action_t;
