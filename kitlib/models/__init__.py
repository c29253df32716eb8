"""Models: the Keras 3 TF Hub layer, handles and stand-ins, TF Hub-style exports, shared classifiers, the capstone recipe, peak-memory estimates."""
