"""Look-alike APIs of other libraries (faiss, ...) running on nearkit."""
