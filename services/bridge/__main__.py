"""`python -m services.bridge`"""

from services.bridge.app import main

if __name__ == "__main__":
    main()
