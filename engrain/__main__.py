from engrain.cli import main

main()
