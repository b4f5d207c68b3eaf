"""Drop-in look-alikes of other libraries' Python APIs (annoy, faiss, hnswlib), built on nearkit's indexes.

    from nearkit.compat.annoy import AnnoyIndex
    import nearkit.compat.hnswlib as hnswlib
    from nearkit.compat import faiss
"""
