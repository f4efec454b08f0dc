from flexheg.cli import main

main()
