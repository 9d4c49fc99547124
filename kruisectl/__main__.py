from kruisectl.cli import main

main()
