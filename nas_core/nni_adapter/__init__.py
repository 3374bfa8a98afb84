"""Everything that talks to NNI lives in this package; the rest of nas_core never imports nni."""
