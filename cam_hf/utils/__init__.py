"""Helpers shared across cam_hf: argument checks (`checks`) and audio resampling (`audio`).

Nothing is imported here, so that importing one helper module does not import the others' dependencies.
"""
