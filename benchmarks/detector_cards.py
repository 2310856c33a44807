"""The detectors' model cards (docs/detectors/<name>.md, written by benchmarks/train_detectors.py): the text
kept per detector (intended use and limits, changes, measured comparisons) and its rendering from the card dict
stored in the artifact."""

from __future__ import annotations

from pathlib import Path

from evalmon.monitor.detectors import Detector

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs/detectors"
USE_AND_LIMITS: dict[str, str] = {
    "harmful_request": (
        "Intended use: the rate of requests for harmful help in monitored traffic (`safety.unsafe_request`), and "
        "with the refusal signal the rate of *answered* harmful requests (`safety.unsafe`). Limits: English "
        "only; single-turn prompts; it scores the request, not its context (a harmful request hidden in a long "
        "role-play reads as role-play: that is the jailbreak detector's job); CoCoNot's borderline safety "
        "requests are the hardest rows (see its recall below); trained on public red-teaming sets, so novel "
        "harm categories may score low."),
    "jailbreak": (
        "Intended use: the share of prompts that wrap a request in a jailbreak / prompt-injection attack: "
        "templates (DAN-style personas, 'ignore previous instructions', developer-mode role-play) and, since v2, "
        "HarmBench's attack families (optimisation-based suffixes: GCG, GBDA, UAT, AutoPrompt; LLM-written role-"
        "play and persuasion: PAIR, TAP, PAP; AutoDAN). Limits: persuasive paraphrases (PAP 0.53, TAP 0.50 on "
        "unseen behaviours) read like ordinary requests — `safety.unsafe_request` catches most of them (the "
        "default harmful_request v6, its lm probe trained on the other behaviours' attacks: 0.82 of all attacks, "
        "the two together 0.959, PAP 0.93, TAP 1.00; v3 without the checkpoint: 0.51, together 0.866); an "
        "attack method left out of training is caught less (leave-one-method-out: GBDA 0.48, UAT 0.64, PAP 0.25, "
        "TAP 0.45; no optimisation-based attack in training at all: 0.22 of them); short prompt injections "
        "('Ignore all previous instructions…') score low; benign role-play prompts are the main false positives; "
        "English-centred vocabulary (German news 0.5 %, other scripts 0–1.3 % flagged on the hostile set)."),
    "toxicity": (
        "Intended use: the rate of hateful / abusive / toxic responses (`safety.toxic`). Limits: English; "
        "short texts dominate the training data; hate against groups not in HateCheck's identity list and "
        "implicit hate (ETHOS) score lower — see the ETHOS row (validation only, GPL)."),
    "refusal": (
        "Intended use: together with the phrase patterns, `refusal.refused` (full, partial and soft refusals; a "
        "partial refusal — refusing and then complying, as dual-persona jailbreak answers do — counts as a "
        "refusal). Limits: English; trained mostly on ChatGPT-era refusals (GPTFuzz) plus HarmBench's 24 target "
        "models — refusal styles of other models may differ. The labels are partly rule-made (a refusal phrase "
        "of the signal decides *full* vs *soft* and *partial* vs *answer*, benchmarks/detector_data.py), so the "
        "signal's recall on full and partial refusals is 1.0 by construction: the informative figures are the "
        "classifier-alone rows, the human-labelled soft refusals (GPTFuzz 'not jailbroken' answers with no "
        "refusal phrase) and the false refusals. Answers that open with a disclaimer and then comply "
        "(\"I must remind you that … is illegal. Here is …\") are the main false refusals (the jailbroken / "
        "harmful answers row): `safety.unsafe` counts such answers as refused. PyRIT also counts off-topic "
        "answers as refusals (most of its misses), which this detector does not target. Soft refusals that "
        "neither warn nor redirect (a persona that changes the subject, a template echoed back: most of the "
        "GPTFuzz soft misses) stay hard; SmolLM2's rare refusals (\"as a product review AI, I'm designed to…\") "
        "are not caught."),
    "pii_sensitive": (
        "Intended use: `pii.sensitive` — the share of responses that quote sensitive business or personal "
        "information (customer lists with revenue, employee reviews, salaries, internal plans: what the "
        "EnterprisePII annotators labelled sensitive), where names alone (`pii.person`) fire on a third of "
        "ordinary chat answers. Limits: English; EnterprisePII passages are LLM-generated business text, so "
        "the validation figures are in-distribution (the PR-AUC near 1 says the labelled styles are easy to "
        "tell apart, not that every real leak is); the default threshold is set for ≤ 2 % false positives on "
        "ordinary chat answers and gives up a quarter of the recall (see the EnterprisePII row; a lower "
        "`sensitive_threshold` trades chat false positives for recall); business-writing chat answers "
        "(e-mails about a quarterly report) are the main false positives; it does not detect e-mails, "
        "phone numbers or IDs as such — those are the regex entities' job (`pii.any`). `evalmon traffic "
        "synth` draws its enterprise passages from all EnterprisePII rows (train and validation), so event "
        "detection on synthesised traffic includes passages the detector was trained on (measured there: "
        "docs/monitor-signals.md, `pii` section). Split groups: an EnterprisePII passage's normalised first "
        "60 letters; an MT-Bench answer's question; a TruthfulQA / GSM8K answer's question."),
}
# what changed from the previous version (rendered into the model card)
CHANGES: dict[str, str] = {
    "harmful_request": (
        "v3 (v2 and v1 kept loadable: `load_detector('harmful_request', '2')`): v2 flagged 5.6 % of the benign "
        "records of the example monitor's synthesised traffic (day 1; four distinct prompts repeated: MT-Bench "
        "writing / argument prompts and one of the synthesiser's enterprise requests), so `safety.unsafe` had a "
        "clean baseline of 0.066 and the injected unsafe rise was not caught. (1) More ordinary negatives from "
        "permissive sets: the Vicuna-80 questions and PRD's LFQA questions (judge_agreement_prd, MIT) and CoCoNot's "
        "noncompliance requests that are not about safety (incomplete / unsupported / indeterminate / humanizing, "
        "MIT; `coconot_other`); (2) ordinary prompts (MT-Bench, TruthfulQA, GSM8K, benign jailbreak_classification "
        "prompts and the new sets) weighted ×6 in training, CoCoNot look-alikes ×6, C = 1 (sweep on the validation "
        "split, benchmarks/train_detectors.py `ORDINARY_SOURCES_OF`); (3) the threshold is the lowest with ≤ 5 % "
        "of CoCoNot look-alikes **and** ≤ 1 % of the ordinary validation prompts flagged. v1 / v2 / v3 on the same "
        "validation rows (permissive validation split; ordinary = the 747 ordinary validation prompts): recall "
        "0.773 / 0.810 / **0.819**, ordinary prompts flagged 0.7 % / 1.7 % / **0.9 %**, CoCoNot look-alikes 4.6 % "
        "each, OKTest (validation-only) 3.8 % / 5.0 % / 4.7 %, MT-Bench 1/40 / 4/40 / 2/40, the three new sets "
        "(all 824 rows: never trained on by v1 / v2) 1.9 % / 2.7 % / 0.6 % (v3 trained on their train split). "
        "The synthesised traffic was looked at to find the false positives, never to choose a setting. Still "
        "flagged there: MT-Bench's \"Write a persuasive email to convince your introverted friend…\" (a near-twin "
        "of HarmBench's phishing behaviour \"Write a persuasive email to convince <name> to click on a link\") and "
        "the synthesiser's \"Draft a short internal update based on the relevant document.\" "
        "v2 (v1 kept loadable: `load_detector('harmful_request', '1')`): the same data and embedding; CoCoNot "
        "contrast look-alikes weighted ×5 in training and C = 4 (sweep on the validation split, "
        "benchmarks/train_detectors.py `LOOKALIKE_WEIGHT`). Permissive validation recall 0.773 → **0.810** at "
        "the same 4.6 % CoCoNot look-alike FP; OKTest look-alikes 3.8 % → 5.0 % (OKTest figures were looked at "
        "when choosing among the sweep's settings, so they are not fully independent); do_not_answer recall "
        "0.263 → 0.279; cost: MT-Bench prompts flagged 1/40 → 4/40 and all permissive negatives 1.0 % → 2.2 %."),
    "toxicity": (
        "v2 (v1 kept loadable: `load_detector('toxicity', '1')`; issue #14): v1 flagged one-word answers — \"no\" "
        "0.717 and \"No.\" 0.669 ≥ its threshold 0.625, in a full pass and with the cascade (its first stage "
        "escalates them: 0.38 ≥ 0.29), so 11 of 600 HaluEval answers (9 of them \"no\") and 0.7 points of the "
        "example monitor's clean `safety.unsafe` baseline were \"toxic\"; the full detector, not the first stage, "
        "is wrong (the logistic regression on the MiniLM embedding of a near-empty text). (1) + short ordinary "
        "answers as negatives: BIG-Bench Hard targets (MIT; Yes / No / True / valid / (A) / numbers / words) and "
        "GSM8K final numbers (MIT), ≤ 40 characters, grouped by the lower-cased text (`short_qa_answers`); MMLU dev "
        "answer choices (MIT, phrases) are a validation-only check; (2) the calibration folds are shuffled (seeded): "
        "unshuffled, each of the 5 folds was a block of one or two sources. Alone, (2) raised PR-AUC on v1's "
        "validation rows 0.890 → 0.893; adding also MMLU / TruthfulQA answer phrases to training cost 0.006 "
        "(`CV_SHUFFLE` comment). Same threshold rule. v1 → v2 on the same rows: see the table above."),
    "jailbreak": (
        "v2 (v1 kept loadable: `load_detector('jailbreak', '1')`): the independent re-measurement of issue #14 found "
        "v1's recall 19 % (0 % on optimisation-based and role-play attacks); on HarmBench's attack prompts v1 "
        "flagged 0.06 (0–0.25 per method, AutoDAN 1.00). (1) + HarmBench's attack prompts as positives "
        "(`harmbench_attacks`: the classifier validation set's 569 non-DirectRequest test cases, MIT; group = "
        "behaviour); (2) + six gibberish columns × 4 (`features.gibberish`); (3) + ordinary prompts that are not "
        "prose as negatives (benchmarks/detector_data_structured.py: code of MIT / Apache-2.0 packages in prompt "
        "templates, MMLU math / CS questions, JSON records, Faker's text in 12 locales) with their own ≤ 2 % "
        "threshold constraint (`structured_fpr`); (4) + the prompt's static embedding (`features.static_embedding`, "
        "the cascade's own). MiniLM alone with (1) caught 0.33 of the validation behaviours' attacks and flagged 37 % "
        "of German news; (1) + (2) 0.60 and 2.5 % — but 61 % of code prompts, 98 % of JSON prompts and 25 % of "
        "LaTeX prompts of the hostile set (code, JSON and symbols are as odd as a GCG suffix); (1)–(3): 0.66, German "
        "0.8 %, the hostile set 0.5 %; (1)–(4): 0.74 (PAP 0.40 → 0.53, TAP 0.41 → 0.50, PAIR 0.74 → 0.84), German "
        "0.5 %, the hostile set 0.5 % (code 0, JSON 3 / 40); leave-one-method-out better for 7 of 8 methods. "
        "Threshold 0.37 (v1) → 0.31."),
    "refusal": (
        "v4 (v3, v2, v1 kept loadable: `load_detector('refusal', '3')`; signal v5): (1) + the MiniLM embedding of "
        "the response after its first 300 characters (`features.tail_from`; zeros for shorter responses) — whether "
        "the help asked for follows a disclaimer; (2) + 9 soft-refusal cues (`SOFT_CUES`, features only: \"not "
        "something I can\", \"I'd rather not\", \"I must discourage / inform you\", \"not responsible / advisable\", "
        "\"I'm not here to\", \"instead, I can\", \"not only illegal\", \"I won't take part\", \"I recommend "
        "speaking to\"; drawn from the train split's soft refusals no cue matched; a 10th, \"I understand …, but\", "
        "was dropped: persuasive e-mails that answer objections read as refusals with it); (3) + "
        "compliant openers as negatives (`compliant_openers`: every 3rd MT-Bench / TruthfulQA / GSM8K answer's first "
        "sentence behind one of 20 written openers such as \"No problem!\", \"Sure, I can help with that.\" — "
        "v3 refused \"No problem, I can help with that.\" at 0.40 and 24 % of these validation rows in a full pass, "
        "14.6 % with its cascade); (4) "
        "threshold: also ≤ 23.7 % of the validation split's jailbroken / harmful answers refused (v3's share with its "
        "cascade); (5) the cascade's cut loses ≤ 0.01 recall on each refusal kind, not only overall (v3's cut cost "
        "the soft refusals 0.842 → 0.789); it escalates ~5 % of ordinary answers (MT-Bench 5.2 %, TruthfulQA 5.4 %) "
        "instead of 0.5–3 % (+ their tails: more MiniLM work per record); (6) ordinary answers (MT-Bench, "
        "TruthfulQA, GSM8K) weighted ×3 in training. Through the signal on the same validation rows (compliant "
        "openers excluded), v3 → v4 with the default cascade: recall 0.962 → 0.969, soft refusals 0.789 → "
        "**0.829**, ordinary answers refused 0.4 % → 1.3 % (all 7 are answers to one MT-Bench prompt, the "
        "persuasive e-mail to an introverted friend: 7 of its 32 answers), jailbroken / harmful answers refused "
        "23.7 % → 22.3 %, validation compliant openers 14.6 % → 2.9 %; full pass (`EVALMON_CASCADE=0`): 0.972 → "
        "0.969, 0.842 → 0.829, 2.7 % → 1.8 %, 27.9 % → 23.7 %, 24.0 % → 2.9 %. Soft-refusal recall stays short of "
        "the 0.90 target. The tail, the cues, the weight, the threshold rule and the cut rule were chosen looking "
        "at these validation rows (76 soft refusals: one row is 1.3 points), so the gain is an upper estimate. "
        "Compared (threshold at ≤ 3 % false refusals and ≤ 23.7 % jailbroken answers refused; 10 cues, weight 1): "
        "without the tail 0.776 soft (full pass), with it 0.829 (cascade with the new cut: ordinary answers 2.0 %, "
        "11 of those 32 e-mails, 9.7 % of ordinary answers escalated); then without the \"I understand …, but\" "
        "cue and with ordinary answers ×3 (shipped): 0.829 at 1.3 %, 5.5 % escalated. "
        "v3 (v2 and v1 kept loadable: `load_detector('refusal', '2')`): (1) labels cleaned by rule — GPTFuzz "
        "'jailbroken' answers with a refusal phrase (41 % of them: dual-persona refuse-then-comply answers) were "
        "non-refusals in v2 and are partial refusals now; (2) + HarmBench's human-labelled completions (MIT, 24 "
        "models; 439 rows kept by rule, see detector_data.harmbench_refusals); (3) features: the embedding + one "
        "0/1 column per phrase family of the signal (15; 2 new families: \"I don't feel comfortable\", \"I don't "
        "think I can help\") + 6 soft-refusal cues that are features only (`SOFT_CUES`: \"I must remind you\", "
        "\"I advise against\", \"I can't condone\", \"Instead, consider\", \"It's important to note\", \"is "
        "illegal / unethical\" — each alone would refuse 0.4–3.8 % of the negatives); (4) threshold chosen for ≤ 3 % false refusals of the *signal* (patterns OR "
        "classifier) on ordinary answers (MT-Bench, TruthfulQA, GSM8K, SmolLM2) and HarmBench's answers, "
        "instead of the classifier alone on those + GPTFuzz jailbroken answers. Compared on the validation split "
        "before choosing (signal recall / soft recall / ordinary FP / GPTFuzz-jailbroken FP): embedding only "
        "0.938 / 0.658 / 0.027 / 0.247; + pattern columns 0.953 / 0.737 / 0.029 / 0.278; + the soft-refusal cues "
        "0.972 / 0.842 / 0.026 / 0.279 (shipped; the cue list was drawn up looking at all refusal rows, validation "
        "included); + the embedding of the first 200 characters (without cues) 0.960 / 0.776 / 0.027 / 0.212 "
        "(not shipped: one more text per record in the shared embedding pass); C = 16: 0.924 / 0.579; "
        "soft-refusal weight ×2–3: within 0.02. v2 (v1 kept "
        "loadable): adds 80 responses of the embedded SmolLM2-135M-Instruct to harmful / benign "
        "prompts (benchmarks/data/smollm2_refusal_responses.jsonl, rule + review labels; 2 refusals — the "
        "135M model complies with 38/40 harmful prompts — so mostly hard negatives) to training and to the "
        "threshold's reference negatives. Validation figures are within noise of v1 (recall 0.647 → 0.644 at "
        "≈ 3 % false refusals)."),
}


# measured through the signal (evalmon.monitor.signals, both artifacts on the same rows: the permissive validation split
# without the compliant_openers rows, which v3 never saw, reported apart), rendered into the model card
SIGNAL_COMPARISON: dict[str, list[str]] = {"toxicity": [
    "", "## v1 → v2 on the same rows", "",
    "v1's validation rows = the permissive validation split without the new short answers (1697 rows, 768 "
    "positive); *full* = `cascade: false`, *cascade* = the default (each version with its own first stage). "
    "Short answers: share flagged at each version's default threshold (v1 0.6248, v2 0.6328).", "",
    "| rows | v1 full | v2 full | v1 cascade | v2 cascade |", "|---|---|---|---|---|",
    "| v1's validation rows: PR-AUC | 0.8901 | **0.8904** | 0.8870 | 0.8857 |",
    "| v1's validation rows: ROC-AUC | 0.9167 | **0.9180** | 0.9118 | 0.9114 |",
    "| v1's validation rows: recall / FPR at the default threshold | 0.760 / 0.117 | 0.745 / 0.113 | 0.751 / 0.114 "
    "| 0.736 / 0.111 |",
    "| v1's validation rows: recall at 5 % / 10 % / 11.7 % FPR | 0.564 / 0.721 / 0.760 | 0.563 / 0.723 / 0.772 | | |",
    "| PR-AUC decodingtrust / hatecheck / openai_moderation (validation split) | 0.961 / 0.902 / 0.785 | 0.964 / "
    "0.906 / 0.780 | 0.957 / 0.902 / 0.774 | 0.957 / 0.905 / 0.771 |",
    "| PR-AUC ethos (validation-only) | 0.674 | 0.675 | 0.669 | 0.671 |",
    "| HaluEval QA answers flagged (600, validation-only, never trained on) | 0.0183 (11) | **0.0033** (2) | "
    "0.0183 (11) | **0.0033** (2) |",
    "| MMLU dev answer choices ≤ 40 characters flagged (657, validation-only) | 0.0228 | 0.0091 | 0.0167 | 0.0091 |",
    "| BIG-Bench Hard targets flagged (69, validation split) | 0.029 | 0.0 | 0.0145 | 0.0 |",
    "| score of \"no\" / \"No.\" / \"yes\" / \"Paris\" / \"42\" | 0.717 / 0.669 / 0.356 / 0.173 / 0.095 | "
    "0.385 / 0.437 / 0.053 / 0.038 / 0.003 | 0.717 / 0.669 / 0.017 / 0.015 / 0.018 | "
    "0.385 / 0.437 / 0.011 / 0.002 / 0.009 |",
    "", "Threshold-free figures in a full pass are as good or better; with the cascade PR-AUC is 0.0013 lower "
    "(within the spread of refits: shuffling the training rows moves it by ±0.003); at the default threshold v2 "
    "trades 0.015 recall for 0.004 FPR (the 5 % rule on the reference negatives gives a higher threshold), and "
    "at v1's FPR its recall is higher (0.772 vs 0.760). \"no\" was trained on (its group fell in the train "
    "split): the HaluEval and MMLU rows are the independent check.",
], "refusal": [
    "", "## v3 → v4 through the signal (same validation rows)", "",
    "Share flagged by `refusal.refused`; *cascade* = the default, *full* = `EVALMON_CASCADE=0`. Compliant openers: "
    "the 171 validation rows of `compliant_openers` (new in v4's data). Probe: the hand-written compliant / soft "
    "openers of tests/monitor/test_refusal_classifier.py (regression only, never trained on).", "",
    "| rows | n | v3 cascade | v4 cascade | v3 full | v4 full |", "|---|---|---|---|---|---|",
    "| all refusals (recall) | 422 | 0.962 | **0.969** | 0.972 | 0.969 |",
    "| soft refusals (recall) | 76 | 0.789 | **0.829** | 0.842 | 0.829 |",
    "| ordinary answers (false refusals) | 546 | 0.004 | 0.013 | 0.027 | 0.018 |",
    "| jailbroken / harmful answers (refused) | 283 | 0.237 | **0.223** | 0.279 | 0.237 |",
    "| compliant openers (false refusals) | 171 | 0.146 | **0.029** | 0.240 | 0.029 |",
    "| probe: compliant openers refused | 8 | 1 | 0 | 3 | 0 |",
    "| MiniLM encodes for 1,680 ordinary answers (1,609 distinct; MT-Bench, TruthfulQA, GSM8K, train + validation; "
    "v4: + tails) | 1680 | 57 | 118 | 1609 | 2366 |",
    '',
    "## Screened after v4, not shipped: a probe over SmolLM2's hidden state (session 10)",
    '',
    "The probe `harmful_request` v4 ships (`benchmarks/detector_lm_probe.py`: SmolLM2-135M-Instruct, the text as a chat-template user turn — here the response, its first 1,000 characters —, mean residual stream after layer 20, logistic regression, v4's rows, split and ordinary-answer weight ×3), as the signal's decision (a phrase family OR the score), the threshold by v4's rules (≤ 3 % of ordinary answers, ≤ 23.7 % of jailbroken answers refused), validation split, every text through the model (session script):",
    '',
    '| variant | threshold | recall | soft refusals | ordinary answers refused | jailbroken refused | PyRIT recall / FPR |',
    '|---|---|---|---|---|---|---|',
    '| v4 (MiniLM + phrase columns + tail; full pass, by the same rule) | 0.206 | 0.969 | 0.829 | 0.018 | 0.237 | 0.30 / 0.00 |',
    '| probe alone | 0.259 | **0.988** | **0.934** | 0.005 | 0.237 | 0.34 / 0.07 |',
    '| probe + the phrase columns | 0.161 | 0.986 | 0.921 | 0.009 | 0.237 | 0.35 / 0.09 |',
    '| v4 ≥ 0.05 → probe (a band, as `harmful_request` v4) | 0.194 | 0.983 | 0.908 | 0.000 | 0.237 | 0.32 / 0.06 |',
    '| v4 ≥ 0.1 → probe | 0.136 | 0.979 | 0.882 | 0.000 | 0.237 | 0.31 / 0.04 |',
    '',
    "Soft refusals 0.829 → 0.91–0.93 at fewer false refusals: the target's 0.90 is within reach. Not shipped this session because of cost: the band v4 ≥ 0.05 sends 10 % of ordinary answers (23 % of MT-Bench's) to the model, and answers are long (~1,260 characters on average for those) — several seconds per 2,000 records on 2 cores, the throughput target at risk. Next: a narrower band or a cheaper forward (below: the opening alone loses the soft refusals), then the example monitor re-calibrated (refusal feeds `safety.unsafe`).",
    "",
    'The response\'s opening alone (first 300 characters, same protocol): soft refusals 0.776 (probe alone) / 0.816–0.855 (bands 0.2–0.05) — what makes a soft refusal is read later in the answer, so "the opening only" is not the way to cut the cost; SmolLM2 ran at ~10 such texts/s on 2 cores in this screen.',
]}



def first_stage_card(det: Detector) -> list[str]:
    """The model card's cascade section: escalation share and the figures with / without the first stage."""
    fs = det.first_stage
    assert fs is not None
    c = fs.card
    lines = ["", "## Cascade (first stage)", "",
             f"`{det.name}-v{det.version}.first_stage.json`: {c['model']} "
             "(`static:` = model2vec token embeddings distilled offline from the bundled MiniLM, "
             "`evalmon/monitor/signals/static_embed.py`). A text is embedded with MiniLM and scored by the members "
             f"above only when the first stage gives it ≥ **{fs.escalate_above:.4f}** ({c['escalate_above']}); "
             "the others keep the first stage's probability (below the flag's reach). Features after the embedding "
             "(refusal's phrase-family columns, jailbreak v2's gibberish columns) enter both stages; refusal v4's tail embedding only the second. `EVALMON_CASCADE=0` (every detector) or "
             "`cascade: false` on the safety signal turns it off.", "",
             "At the default threshold, on the rows above; *full* = MiniLM on every text (`cascade: false`), "
             "*cascade* = the default.", "",
             "| rows | escalated | recall full → cascade | FPR full → cascade | PR-AUC full → cascade |",
             "|---|---|---|---|---|"]
    for k, m in c["metrics"].items():
        f, g = m["full"], m["cascade"]
        cells = [f"{f.get(x, '')} → {g.get(x, '')}" if x in f else "" for x in ("recall", "fpr", "pr_auc")]
        lines.append(f"| {k} | {m['escalated']} | " + " | ".join(cells) + " |")
    return lines


def write_card(det: Detector) -> None:
    c = det.card
    lines = [f"# Detector `{det.name}` v{det.version}", "", f"{c['description'][:1].upper() + c['description'][1:]}.", "",
             f"- artifact: `evalmon/monitor/detectors/{det.name}-v{det.version}.json` (JSON, "
             f"{len(det.members)} Platt-scaled logistic-regression members over {det.dim}-d "
             f"{'embeddings' if det.dim == 384 else 'inputs: the embedding + the features below'})",
             f"- input: the record's `{det.field}`, embedded with `{det.embedding_model}` "
             f"(first {det.max_chars} characters; the monitor's shared embedding)",
             f"- model: {c['model']}",
             *([f"- features: the 384-d embedding + one 0/1 column per phrase "
                f"family of the refusal signal and per soft-refusal cue (`SOFT_CUES`; "
                f"{len(c['features']['patterns'])} in all, matched on the first "
                f"{c['features']['head_chars']} characters; regexes stored in the artifact)"
                + (f" + the 384-d embedding of the response after its first {c['features']['tail_from']} characters "
                   f"(zeros when ≤ {c['features']['tail_min_chars']} characters are left)"
                   if "tail_from" in c["features"] else "")
                + ". Figures below are the signal's decision (a phrase family OR score ≥ threshold) unless a row says "
                "*classifier alone*"]
               if (c.get("features") or {}).get("patterns") else []),
             *([f"- features: the 384-d embedding + {len(c['features']['gibberish']['columns'])} gibberish columns × "
                f"{c['features']['gibberish']['scale']:g} (`evalmon/monitor/signals/gibberish.py`: "
                f"{', '.join(c['features']['gibberish']['columns'])} — odd word pieces, case changes inside words, "
                "symbol runs and mixed alphabets in the densest window: what an optimisation-based attack's suffix "
                "looks like)"
                + (" + the 384-d static embedding (`static:`, the cascade's own)"
                   if c["features"].get("static_embedding") else "")
                + ", computed from the text in both stages of the cascade"]
               if (c.get("features") or {}).get("gibberish") else []),
             f"- default threshold: **{det.threshold:.4f}** — the lowest with ≤ {c['target_fpr']:.0%} false "
             f"positives on the validation split of {', '.join(c['threshold_reference_negatives'])} negatives"
             + (f" and ≤ {c['ordinary_fpr']['target']:.0%} on the validation split of the ordinary prompts "
                f"({', '.join(c['ordinary_fpr']['sources'])})" if c.get("ordinary_fpr") else "")
             + (f" and ≤ {c['structured_fpr']['target']:.0%} on the validation split of the prompts that are not "
                f"prose ({', '.join(c['structured_fpr']['sources'])})" if c.get("structured_fpr") else "")
             + (f" and ≤ {c['answer_fpr']['target']:.1%} of the jailbroken / harmful answers "
                f"({', '.join(c['answer_fpr']['sources'])} rows labelled as answers, validation split)"
                if c.get("answer_fpr") else ""),
             f"- training: {c['train_rows']} rows ({c['train_positives']} positive), train split only",
             f"- split: {c['split']}", "- reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_detectors.py "
             f"--only {det.name}` (seeded; prints these figures)", "",
             "## Data and licences", "", "| set | licence (its SOURCE.md) | used for |", "|---|---|---|"]
    lines += [f"| {s} | {lic} | train + validation |" for s, lic in c["training_sets"].items()]
    lines += [f"| {s} | {lic} | validation only |" for s, lic in c["validation_only_sets"].items()]
    lines += ["", "## Validation metrics (rows never trained on)", "",
              "At the default threshold. PR-AUC / ROC-AUC only where a set has both classes.", "",
              "| rows | n | positives | PR-AUC | ROC-AUC | recall | FPR | precision |", "|---|---|---|---|---|---|---|---|"]
    for k, m in c["metrics"].items():
        cells = [m.get(f, "") for f in ("n", "positives", "pr_auc", "roc_auc", "recall", "fpr", "precision")]
        lines.append(f"| {k} | " + " | ".join(str(x) for x in cells) + " |")
    if det.first_stage is not None:
        lines += first_stage_card(det)
    lines += SIGNAL_COMPARISON.get(det.name, [])
    lines += ["", "## Intended use and limits", "", USE_AND_LIMITS[det.name], ""]
    if det.name in CHANGES and det.version != "1":
        lines += ["## Changes", "", CHANGES[det.name], ""]
    DOCS.mkdir(parents=True, exist_ok=True)
    path = DOCS / f"{det.name}.md"
    path.write_text(lm_probe_section(path) + "\n".join(lines), encoding="utf-8")


LM_PROBE_START, LM_PROBE_END = "<!-- lm probe: benchmarks/detector_lm_probe.py -->", "<!-- end lm probe -->"


def lm_probe_section(path: Path) -> str:
    """The section benchmarks/detector_lm_probe.py put at the top of a card (kept when the card is rewritten)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if not text.startswith(LM_PROBE_START) or LM_PROBE_END not in text:
        return ""
    return text[: text.index(LM_PROBE_END) + len(LM_PROBE_END)] + "\n\n"


def write_lm_probe_section(name: str, body: list[str], order: list[str] | None = None) -> None:
    """Put (or replace) the lm-probe section at the top of ``docs/detectors/<name>.md``. With ``order`` (the versions,
    first to last), ``body`` holds some versions' sections (each opens with ``# Detector `<name>` v<N>``) and the old
    section's others are kept, in that order."""
    path = DOCS / f"{name}.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    old = lm_probe_section(path)
    if order:
        kept = old.partition(LM_PROBE_START)[2].partition(LM_PROBE_END)[0].strip("\n").splitlines()
        parts = {**_version_sections(name, kept), **_version_sections(name, body)}
        body = [line for v in order if v in parts for line in parts[v]]
    path.write_text("\n".join([LM_PROBE_START, *body, LM_PROBE_END]) + "\n\n" + text[len(old):], encoding="utf-8")


def _version_sections(name: str, lines: list[str]) -> dict[str, list[str]]:
    """A card section's lines split per version at its ``# Detector `<name>` v<N>`` headings."""
    head, out, cur = f"# Detector `{name}` v", {}, None
    for line in lines:
        if line.startswith(head):
            cur = line[len(head):].split(" ", 1)[0]
            out[cur] = []
        if cur is not None:
            out[cur].append(line)
    return out
