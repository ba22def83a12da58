from m6rec_bench.launch import main

main()
