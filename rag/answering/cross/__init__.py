"""A cross-encoder that reads the question and a sentence together.

The ranker sees the question and a sentence only through features computed apart (cosine of
separate embeddings, shared words); it cannot tell which of two neighbouring sentences on the
same topic answers. This encoder, cut from the shipped e5 model's first layers and fine-tuned
on the shared QA training split (``train.py``), scores the pair jointly. The selector asks it
only about the ranker's close calls and the judge's doubtful answers (``check.py``), which it
may reorder or decline (see ``rag/answering/models/README.md``).
"""
