"""Plans: small, pure integer values saying which rows go where, computed from lengths alone.

- :mod:`.windows` - which windows (start rows) form each batch;
- :mod:`.lanes` - which chunk of which series each lane of each batch holds, and where lanes reset;
- :mod:`.buckets` - which sequences share a batch and the length it is padded to.

A plan never touches data; :mod:`statebatch.materialise` turns a plan and a row source into arrays.
"""
