"""Operations: one record per op, by family."""
