"""The import's canonical columns and answer formats, in words: the one text that ``adt bank import --help``
shows and ``itembank/importer.py`` follows (kept free of heavy imports, so the help stays quick)."""

IMPORT_COLUMNS_HELP = """\
\b
Canonical columns (read when no column flags are given):
  id              external id within the source (default: the row number)
  question        the item text (required)
  choices         list of option texts (mc, multi); absent or empty for open/numeric
  answer          the key (formats below); --no-key for items without one
  type            mc | open | numeric | multi | pairwise (default: mc with choices, else open;
                  numeric with --answer-format gsm8k)
  language        en, zh, ... (default: --language, else guessed from the text)
  tags            a mapping key -> value or list of values (JSON text in CSV)
  tolerance       numeric only, optional: absolute (0.05, 1e-3) or relative (1%)
  partial_credit  multi only, optional: true gives the Jaccard index as the score
  reference       open/pairwise, optional: a reference answer; an open item with one
                  (or a rubric) is scored by judges (adt judge run), 'answer' left empty
  rubric          open, optional: JSON {"version": 1, "criteria": [{"name": ..,
                  "description": .., "levels": ["score 0 means ..", "score 1 ..", ..]}]}
                  (an object in JSONL); the item's score sums the criteria's levels
  baseline        pairwise, required: the answer the candidate's is compared with
  provenance, optional: origin (human | template | model-generated | variant),
  generator,
  generator_params, parent_id (external id, same source, or an item id it_...),
  review_state,
  difficulty_band, license

\b
Answer keys (--answer-format auto guesses per row; letter | index | text force one):
  mc       a letter (B), a 0-based index (1) or the option text; stored as the letter
  multi    ["B","D"], "B,D", "BD" (distinct labels), 0-based indices [1,3] or the
           option texts; stored sorted (B,D); exact set match unless partial_credit
  numeric  any usual notation: 1,234  -0.25  3/4  3.27E-22  3.27 x 10^-22;
           a leading currency sign and a trailing unit (kJ/mol, %, m/s) are dropped;
           a tolerance may ride in the key: 9.81 +/- 0.05 (default 1e-6)
  gsm8k    a worked solution ending '#### 42' (numeric items)
  open     the reference text (exact match; judged items: reference / rubric columns)
Every row is checked; a failed import lists every problem (file, line, field) and
writes nothing."""
