"""python -m seq2seq: the command line of `seq2seq.cli`."""

from seq2seq.cli import main

main()
