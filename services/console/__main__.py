"""`python -m services.console`"""

from services.console.app import main

if __name__ == "__main__":
    main()
