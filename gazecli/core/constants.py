"""Names that the settings (which must not import the library) and the library both need, defined
once: the library modules that own them import them from here."""

PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # --precision (engine/precision.py resolves it)
QUESTION_TYPES = ("colour", "count", "region", "where", "where-person", "next-to", "relation", "gaze", "direction",
                  "cell")  # GazeWorld's question-answer pairs (data/gazeworld_qa.py)
GAZE_QUESTION = "gaze"
STUDENT_MODELS = ("vat", "vat-gc", "gw-student")  # models/build.py (gw-student: models/gazeworld_student.py)
TEACHER_NAMES = ("none", "gradcam", "diffusion", "noise", "vat", "vat-gc")  # teachers/registry.py
IMPORT_KINDS = ("vat", "vat-gc", "diffusion")  # the authors' checkpoints gaze import-weights reads (models/import_weights.py)
PRIOR_ALONE = "prior alone (noise teacher)"  # the pseudo-label report's row of --report-prior
