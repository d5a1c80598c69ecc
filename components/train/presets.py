"""The training schedules' names and the training presets: plain data, so that the train stage's
contract (and the command line made from it) reads them without importing Keras."""

SCHEDULES = ("paper", "joint")  # schedule.py builds their phases
# The network's fields that only an auxiliary task reads: setting one without its task is a
# mistake (the value would be recorded but never used), so the train stage refuses it.
AUXILIARY_FIELDS = {"inpainting": ("inpainting_weight", "inpainting_patch"),
                    "flow": ("flow_weight",)}

# Training presets: the model shape and schedule of a named setting; every value can still be
# overridden (flags / stage parameters). Epochs and learning rates are per phase, so they are
# given per schedule; a schedule not listed keeps its own.
#  "paper": the paper's network (c = 8, crop 176, d = 512) and schedule.
#  "synthetic": a small network for the built-in synthetic dataset, so that the default run
#    trains in minutes on 2 CPU cores: width unit 2, crop 64 (the 200 face resized to 73 first,
#    see input_pipeline), d = 64, the AU branches summed as in the paper; phases of 16, 1 and 3
#    epochs (12-28 s each on 2 cores) with the lr decayed every 8 epochs instead of 2 (x 0.3
#    every 2 would leave most of the run at lr <= 0.001).
#    The first phase starts at lr 0.005, not the paper's 0.01: with the sum, each of the 12 AU
#    branches sends its own gradient back into the shared region layers, and at 0.01 those
#    moved so fast that neither the AUs nor the landmarks improved until the first decay
#    (training-batch F1 0.04-0.31 and landmark error 0.12 over the first 6 epochs).
#    Weights start with PyTorch's defaults (the PyTorch release's scheme). At d = 64 the
#    paper's N(0, 0.01) leaves the landmark head's hidden layer tiny, so its pixel outputs start
#    slowly: squared norm of that layer at initialisation on 9 synthetic faces 1.4 (caffe), 31.6
#    (pytorch), 130.5 (keras); and keras starts 53 % of the AU log-odds beyond +-10 with the sum,
#    pytorch none.
#    Held-out fold 1 of the default synthetic set, one run each (docs/data.md, BENCHMARKS.md):
#      this preset                                      F1 0.869, landmark error 0.055
#      the same at lr 0.003                             F1 0.794, 0.053
#      on the old 9-subject set: mean, keras, lr 0.01   F1 0.781, 0.049 (the previous preset)
#                                sum, pytorch, 0.01     F1 0.656, 0.062
#                                sum, caffe, 0.01       F1 0.652, 0.061
#                                sum, keras, 0.01       F1 0.364, 0.108
TRAINING_PRESETS = {
    "paper": {"model": {}, "epochs": {}, "learning_rates": {}, "batch_size": 9,
              "lr_decay_every": 2},
    "synthetic": {"model": {"width_unit": 2, "crop_size": 64, "hidden_units": 64,
                            "local_merge": "sum", "initialization": "pytorch"},
                  "epochs": {"paper": [16, 1, 3]},
                  "learning_rates": {"paper": [0.005, 0.001, 0.001], "joint": [0.005]},
                  "batch_size": 9, "lr_decay_every": 8},
}
