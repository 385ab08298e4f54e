"""Edits of a finished clip, each a new clip that keeps the parent's own frames bit for bit:
`extend` (new frames after its last) and `retake` (a time range rendered again).

The entry points: `extend.extend_recipe` and `retake.retake_recipe` (the new job's recipe),
`parent.find_parent` (the parent's MP4, checked by sha256), `conditions.edit_conditions` (what the
render holds to), `sound.edited_sound` (the joined sound) and `splice.splice_mp4` (the parent's
packets and the new frames into one MP4).
"""
