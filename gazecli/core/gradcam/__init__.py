"""VQA Grad-CAM pseudo-annotations (docs/design.md, "Grad-CAM"): a VQA model is asked what the person in
the green box looks at; the Grad-CAM of the answer's key noun over the model's text-to-image
attention becomes the person's pseudo gaze map.

- `backends`: loading, and `blip` (BlipForQuestionAnswering); `vlm`: LLaVA, PaliGemma, Qwen2-VL,
  Idefics3/SmolVLM; both behind the interface of `vqa_backend`; `NAMED_MODELS` resolves named
  local models.
- `prompt`: the drawn body box and the question; `keynoun`: the key-noun step;
  `cam`: the Grad-CAM formula.
- `store`: the memory-mappable, resumable store; `records`: what it holds (fp16 maps, result
  chunks) and `StoreMaps`, the data layer's `MapSource`.
- `authors`: import of the authors' pickles through a restricted unpickler.
- the `gaze gradcam` pipeline (batched, resumable, sharded, visualised) is the stage
  `core/stages/gradcam.py`.

Nothing here imports torch or transformers at module level.
"""

from gazecli.core.gradcam.records import StoreMaps
from gazecli.core.gradcam.store import GradcamStore

__all__ = ["GradcamStore", "StoreMaps"]
