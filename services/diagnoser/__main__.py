"""`python -m services.diagnoser`"""

from services.diagnoser.app import main

if __name__ == "__main__":
    main()
