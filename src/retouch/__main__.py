from retouch.cli import main

main()
