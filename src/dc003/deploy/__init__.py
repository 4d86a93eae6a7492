"""Deployment: ONNX export of each tower, parity with PyTorch, FAISS retrieval, ONNX-only serving, bench."""
