"""Work spread over a Ray cluster: embedding for ``rag index --ray`` and offline answering for
``rag ask --batch --ray``.

Ray is an optional extra (``pip install 'qianwen-rag[ray]'``) and is imported only here, lazily,
so the base install never needs it. Each worker is a Ray actor that loads its model once.
"""
