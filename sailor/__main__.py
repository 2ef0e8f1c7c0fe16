from cli.sailor_cmd import main

main()
