"""Offline TF Hub modules: checkpoint reading, BERT preprocessing and encoder, word vectors."""
