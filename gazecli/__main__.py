from gazecli.cli import main

main()
