"""`python -m services.mitigator`"""

from services.mitigator.app import main

if __name__ == "__main__":
    main()
