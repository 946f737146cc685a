"""The study: RNN vs GRU vs LSTM, attention vs none, measured on Multi30k de->en.

``python -m study`` trains a grid of small, comparable models under one budget each, scores them
and writes docs/study.md. One module per part:

- `grid`: the models and the settings they share, and each one's run config;
- `training`: the runs, trained with `seq2seq.train.train`, resumably, two at a time;
- `evaluation`: a finished run's test scores, BLEU by length and gradient flow, and what its
  training log says;
- `gradflow`: how far back gradients reach, by distance from the end of the source;
- `claims`: each textbook claim decided by an explicit rule;
- `plots` and `report`: the figures and the Markdown report;
- `cli`: the command line, and `run_study`, the whole study.
"""
