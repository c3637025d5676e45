"""`python -m services.undoer`"""

from services.undoer.app import main

if __name__ == "__main__":
    main()
