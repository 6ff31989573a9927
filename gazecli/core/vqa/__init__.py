"""The GazeWorld VQA model (docs/design.md, "Grad-CAM"): a BLIP-architecture `BlipForQuestionAnswering` trained from
scratch on GazeWorld's question-answer text only, so `gaze gradcam` can run on it.

- the question-answer pairs a GazeWorld image gives (text only) are GazeWorld's: data/gazeworld_qa.py.
- `model`: the tokenizer built from GazeWorld's vocabulary, the BLIP configuration, teacher-forced
  answer scoring, greedy answers, export as a `from_pretrained` folder.
- `data`: prompted images (the person's green box drawn as `gaze gradcam` draws it) with question
  slots drawn per epoch by the curriculum.
- `cnn`: the convolutional late-fusion GazeWorld VQA with classic Grad-CAM (`--arch cnn`);
  `cnn_train`: its views (answer classes), loss and scoring.
- `stages/train_vqa.py` trains either on the shared engine (`gaze data train-vqa [--arch cnn]`).

transformers is imported inside functions only.
"""
