"""LLM-as-a-judge: MT-Bench prompts, verdict parsing, pairwise/single aggregation, human agreement."""
