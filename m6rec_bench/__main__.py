from m6rec_bench.cli import main

main()
