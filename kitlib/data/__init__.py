"""Data: the loaders and their containers, the registered datasets' manifest and sources, offline stand-ins, splits,
readers, fetching, the learner's own files, safe unpicklers, the offline pack and lesson 12's examples."""
