"""The benchmark prompt (token ids), shared by bench.py and reference.py. Standard library only, so
bench.py runs under any python3, numpy or not."""

PROMPT = [1, 42, 7, 300, 123, 5, 99, 256, 17, 3, 480, 64, 11, 222, 8, 150]  # ids < tiny vocab (512)
