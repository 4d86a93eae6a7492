"""DC-002: the H&M-layout inputs (synthetic or Kaggle), the dataset build and its validation."""
