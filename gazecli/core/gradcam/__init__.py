"""VQA Grad-CAM pseudo-annotations (method-spec §2): a VQA model is asked what the person in
the green box looks at; the Grad-CAM of the answer's key noun over the model's text-to-image
attention becomes the person's pseudo gaze map.

- `backends`: `blip` (BlipForQuestionAnswering) and `vlm` (LLaVA, PaliGemma, Qwen2-VL,
  Idefics3/SmolVLM) behind one interface; `NAMED_MODELS` resolves named local models.
- `prompt`: the drawn body box and the question; `keynoun`: the key-noun step;
  `cam`: the Grad-CAM formula.
- `store`: the memory-mappable, resumable store and `StoreMaps`, the data layer's `MapSource`.
- `authors`: import of the authors' pickles through a restricted unpickler.
- `run`: the `gaze gradcam` pipeline (batched, resumable, sharded, visualised).

Nothing here imports torch or transformers at module level.
"""

from gazecli.core.gradcam.store import GradcamStore, StoreMaps, open_store

__all__ = ["GradcamStore", "StoreMaps", "open_store"]
