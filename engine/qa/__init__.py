"""Quality gates: technical checks of a clip's file and semantic scores with a local CLIP."""
