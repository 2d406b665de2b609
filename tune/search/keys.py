"""Keys and file names that several modules of the search layer share, in a leaf that imports nothing, so that
importing one never drags in Ray, the trainer or another module of the layer (../../../shared/STYLE.md).
The names the report reads too (columns, results files, statuses, metrics) are in reports/schema.py."""

# keys of a trial's Ray config and results
TRAINING_ITERATION = "training_iteration"  # Ray's count of a trial's reported results: its epochs here
FAULT_KEY = "fault_injection"  # set in the config of the trials --fail-trials names
PARENT_KEY = "parent_trial"  # the config entry naming the parent trial a dependent stage's trial builds on
# set by the driver in the config of a trial that failed on its own error while --retries allows more runs: Ray runs
# any failed trial again, and this one then fails again at once, with that error (results.ResultsWriter.on_trial_recover)
FAILED_KEY = "failed_before"

# files of a study folder's stages and trials
CHECKPOINT_NAME = "checkpoint.pt"  # the file in each of a trial's Ray checkpoints
PARENTS_FILE = "parents.json"  # in a dependent stage's folder: the parent trials its trials choose among
NODE_CHECK = ".node_check-"  # in a study's folder as it starts on a cluster: a file every node must read back
