"""The study: RNN vs GRU vs LSTM, attention vs none, measured on Multi30k de->en.

``python -m study`` trains a grid of small, comparable models under one budget each, scores them
and writes docs/study.md. One module per part:

- `grid`: the models and the settings they share, the runs (cell, seed, data) and each one's
  run config;
- `long_data`: Multi30k pairs joined into long ones, for training and for the long test set;
- `plan`: the runs in order with their minutes, printed before training;
- `training`: the runs, trained with `seq2seq.train.train`, resumably, two at a time;
- `evaluation`: a finished run's test scores, BLEU by length and gradient flow, and what its
  training log says;
- `gradflow`: how far back gradients reach, by distance from the end of the source;
- `claims`: each textbook claim decided by an explicit rule;
- `seeds`: claims decided over several seeds, which must agree;
- `plots` and `report` (with `report_long`, the long-sentence section): the figures and the
  Markdown report;
- `cli`: the command line, and `run_study`, the whole study.
"""
