"""Full-text features of the Redis-compatible server: per-document term statistics and
Redis's text scorers, synonyms, phonetic terms, suggestions and spelling checks.

``forward`` keeps what Redis's forward index keeps per document (term frequencies weighted
by field weight, positions, stems, phonetic and synonym terms); ``scoring`` applies Redis's
scorers (RediSearch 2.10's formulas) to a query tree for one document.
"""
