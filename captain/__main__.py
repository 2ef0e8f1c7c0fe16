from cli.captain_cmd import main

main()
